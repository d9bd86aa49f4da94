"""``python -m pipeline`` is ``facesync``."""

from pipeline.cli import main

if __name__ == "__main__":
    main(prog_name="facesync")
