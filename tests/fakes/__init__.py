"""Fake model servers that speak the OpenAI and Anthropic wire formats over real HTTP on loopback.

server.py holds the machinery (a scripted Starlette app served by uvicorn in a thread, one per
kind and test process); openai_server.py and anthropic_server.py build the replies each wire
format sends; fixtures.py has the pytest fixtures ``openai_server`` and ``anthropic_server``.
"""
