"""The one fake clock of the tests: a callable returning `now`, which a test moves by hand.

Anything in pcpsim that reads time takes a `clock` callable (time.monotonic in the processes),
so a test passes a FakeClock and sets or advances `now` to reach a deadline without sleeping."""


class FakeClock:
    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now
