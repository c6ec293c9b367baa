"""The Streamlit dashboard: side-by-side neighbourhoods, blind ratings, review."""
