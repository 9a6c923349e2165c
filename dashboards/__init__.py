"""The process engineer's dashboard: a multi-page Plotly Dash app over the run store.

    >>> from dashboards.app import create_app
    >>> app = create_app("twin-runs")            # a dash.Dash; app.server is its Flask app
    >>> app.run(host="127.0.0.1", port=8050)

or ``twin dashboard [--store DIR] [--host 127.0.0.1] [--port 8050]``. Pages live in
``dashboards.pages`` (one module each; see its docstring for the contract).
"""
