"""The console: a local web page to watch processes, answer approvals and read the audit (layer 9).

A front end like the CLI: it reads through the runtime and changes things only through
dispatch() as the host, attributed to the console; it holds no SQL and decides no authority.
See docs/console.md. Imported only by the commands that serve it ('alos --help' never pays).
"""
