from gansweep.benchmark import main
from gansweep.cli import run_command

run_command(main)
