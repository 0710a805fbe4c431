"""``python -m bot`` and the ``reloadbot`` script: see bot.cli."""

import sys


def run() -> int:
    from bot.hints import missing_dependency

    # Run by a Python that lacks the bot's dependencies (another venv, the system's):
    # one line that says how to install them, not an import traceback.
    missing = missing_dependency()
    if missing is not None:
        print(missing, file=sys.stderr)
        return 1

    from bot.deferred import deferring

    # Everything the CLI imports at start-up (the irc library above all) is imported
    # with the modules it never uses deferred: see bot.deferred.
    with deferring():
        from bot.cli import main
    return main()


if __name__ == "__main__":
    sys.exit(run())
