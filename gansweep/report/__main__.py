from gansweep.cli import run_command
from gansweep.report.table import main

run_command(main)
