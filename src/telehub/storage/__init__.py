"""SQLAlchemy 2 storage: the only package that speaks SQL."""
