"""Agent runtime integration: Claude Code (and Codex CLI) hook commands and their installer.

:mod:`leasehold.hooks.claude` runs the hook events; :mod:`leasehold.hooks.install` merges them
into settings files. This package's ``__init__`` stays empty of imports: the console entry
checks :data:`EVENTS` before anything else is loaded.
"""

#: Hook events ``leasehold hook EVENT`` runs.
EVENTS = ("pre-tool-use", "post-tool-use", "session-start", "session-end")
