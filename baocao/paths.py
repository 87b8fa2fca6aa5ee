"""Where the project's directories are: the one place that computes a path from a module's location.

The library runs from the repository (an editable install, or a deployed run's working directory), so
the templates, migrations and configuration sit beside the package, not inside it.
"""

from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
TEMPLATES_DIR = PROJECT_DIR / "templates"
MIGRATIONS_DIR = PROJECT_DIR / "migrations"
CONFIG_DIR = PROJECT_DIR / "config"
