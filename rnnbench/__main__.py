from rnnbench.cli import main

main(prog_name="rnnbench")
