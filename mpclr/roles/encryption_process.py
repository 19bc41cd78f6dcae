"""A hospital's encryption process: `python -m mpclr.roles.encryption_process`. A module of its own, so that
starting it does not run mpclr.roles.encryptor a second time as __main__ (the package has imported it
already, and Python warns that this "may result in unpredictable behaviour")."""

from mpclr.roles.encryptor import serve
from mpclr.roles.pipe import run_worker

if __name__ == "__main__":  # pragma: no cover - the encryption process
    run_worker(serve)
