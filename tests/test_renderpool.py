"""baocao.consolidation.renderpool's slots: a report waits for a free slot, and takes the first one free."""

from __future__ import annotations

import threading

from baocao.consolidation.renderpool import RenderPool


def test_reports_take_a_process_then_this_process_then_wait_for_the_first_free() -> None:
    pool = RenderPool(processes=1, here=1)  # the processes start at the first report: none here
    try:
        assert pool._take() == "pool"
        assert pool._take() == "here"  # the process is busy: this process renders the next report
        got: list[str] = []
        third = threading.Thread(target=lambda: got.append(pool._take()))
        third.start()
        third.join(0.2)
        assert third.is_alive() and not got  # both busy: it waits for a slot (not in the process's queue)
        pool._give_back("here")
        third.join(5)
        assert got == ["here"]  # the slot that came free, whichever it is
        pool._give_back("pool")
        assert pool._take() == "pool"
        assert pool.rendered == {"pool": 1, "here": 1}
    finally:
        pool.close()


def test_many_callers_use_every_slot() -> None:
    """The flow submits all its report tasks at once: all slots must be used, not only the first."""
    pool = RenderPool(processes=1, here=1)
    busy: set[str] = set()
    seen_both = threading.Event()
    lock = threading.Lock()

    def report() -> None:
        slot = pool._take()
        with lock:
            busy.add(slot)
            if busy == {"pool", "here"}:
                seen_both.set()
        seen_both.wait(2)
        with lock:
            busy.discard(slot)
        pool._give_back(slot)

    try:
        threads = [threading.Thread(target=report) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        assert seen_both.is_set()
        assert sum(pool.rendered.values()) == 8 and pool.rendered["here"] >= 1
    finally:
        pool.close()


def test_the_costliest_reports_start_first() -> None:
    """A report needs only the figures; started last, the ministry's (the largest appendix) ran alone
    on one core after every province's. The order is the subtree's size, largest first."""
    from baocao import runtime
    from baocao.consolidation.reporting import costliest_first

    cfg = runtime.config()
    h = cfg.hierarchy
    provinces = [c.code for c in h.children("BNV")][:5]
    order = costliest_first(cfg, [*provinces, "BNV"])
    assert order[0] == "BNV"
    sizes = [len(h.subtree_codes(u)) for u in order]
    assert sizes == sorted(sizes, reverse=True)


def test_pool_processes_start_when_prefect_put_the_flows_directory_on_sys_path() -> None:
    """A deployment's flow run loads its flow from the file (``flows/consolidate.py``), and Prefect puts that
    file's directory on ``sys.path``; the pool's processes inherit the path. No module of ours may then
    stand in for a standard-library one (``flows/calendar.py`` did: pandas' ``import calendar`` found it,
    every render process died at start and the national reports were all rendered in one process)."""
    import subprocess
    import sys
    import textwrap
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    code = textwrap.dedent("""
        import multiprocessing, sys
        from concurrent.futures import ProcessPoolExecutor
        sys.path.insert(0, sys.argv[1])
        from baocao.consolidation.renderpool import _warm
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=_warm) as pool:
            print(pool.submit(sum, [1, 2]).result())
    """)
    run = subprocess.run([sys.executable, "-c", code, str(root / "flows")], cwd=root, capture_output=True,
                         text=True, timeout=180)
    assert (run.returncode, run.stdout.strip()) == (0, "3"), run.stderr[-3000:]


def test_no_module_of_ours_has_the_name_of_a_standard_library_module() -> None:
    import sys
    from pathlib import Path

    ours = {p.stem for p in (Path(__file__).resolve().parent.parent / "flows").glob("*.py")}
    assert ours & set(sys.stdlib_module_names) == set()
