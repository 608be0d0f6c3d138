"""Dashboards: the live terminal dashboard and the live demo (``floorwalker demo``)."""
