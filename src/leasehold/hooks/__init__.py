"""Agent runtime integration: Claude Code, Codex CLI and Gemini CLI hook commands, the git
pre-commit guard, and their installers.

:mod:`leasehold.hooks.claude` runs the hook events; :mod:`leasehold.hooks.install` merges them
into settings files. This package's ``__init__`` stays empty of imports: the console entry
checks :data:`EVENTS` before anything else is loaded.
"""

#: Hook events ``leasehold hook EVENT`` runs.
EVENTS = ("pre-tool-use", "post-tool-use", "session-start", "session-end", "codex", "gemini")
#: ``leasehold hook RUNTIME``: one command for every event of that runtime (the payload's
#: ``hook_event_name`` says which) -> the module that runs it.
RUNTIMES = {"codex": "leasehold.hooks.codex", "gemini": "leasehold.hooks.gemini"}


def runtime_module(name: str):  # type: ignore[no-untyped-def]
    """The hook module of runtime ``name`` (a key of :data:`RUNTIMES`)."""
    import importlib

    return importlib.import_module(RUNTIMES[name])
