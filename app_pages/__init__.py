"""The studio's pages (scripts run by st.navigation) and their shared helpers."""
