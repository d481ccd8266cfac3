"""The HTTP API: a thin FastAPI layer over the one ``VideoGenerator`` the studio and the CLI use.

``app`` builds the application (routes in ``jobs``, ``events``, ``files`` and ``system``), ``security``
holds the host/origin/token checks, ``server`` starts uvicorn (``./launch.sh api``). Importing this
package does not import FastAPI; the modules do.
"""
