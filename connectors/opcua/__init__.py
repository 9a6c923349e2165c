"""OPC-UA for the twin: publish a simulated line, emulate a plant, sync live plant data, keep a historian.

    twin serve osd-tablet --speed 60                       # the twin as an OPC-UA server
    twin emulate osd-tablet --endpoint opc.tcp://127.0.0.1:4841 --speed max
    twin sync osd-tablet --endpoint opc.tcp://127.0.0.1:4841 --map plant_models/tags/osd_tablet.yaml
    twin history plant.db --tag COATING_U1_STATE --out states.csv

Modules: ``security`` (certificates, trust list, users and roles), ``tagmap`` (plant tags -> stations),
``server`` (the twin's address space), ``emulator`` (a PLC-style plant), ``historian`` (SQLite WAL store),
``plantlog`` (historian samples -> event log), ``sync`` (subscription, reconnects, shadow twin), ``guard``
and ``limits`` (the servers against garbage, silent and greedy clients), ``cli``.
Everything is asyncio (asyncua); ``blocking`` has thin synchronous wrappers for scripts and notebooks.
"""
