"""The one error a command raises for a refusal: `main` prints it as `pcpsim: error: ...` and exits 2."""


class CliError(Exception):
    pass
