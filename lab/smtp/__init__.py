"""Sans-IO SMTP: codec and relay core. No asyncio, socket or ssl imports here (a test checks)."""
