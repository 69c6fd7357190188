"""The device simulator / load generator behind ``telehub simulate``.

signals.py makes believable readings, stats.py counts honestly, transports.py
and mqtt.py send them (HTTP, gRPC, MQTT), runner.py paces them at a steady
rate with a bounded window, cli.py is the thin typer command.
"""
