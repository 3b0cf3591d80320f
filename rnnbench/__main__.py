from rnnbench.cli import main

if __name__ == "__main__":  # (not when a child process of a sweep imports this module again)
    main(prog_name="rnnbench")
