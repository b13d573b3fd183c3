"""What ingestion keeps: the database (SQLite or PostgreSQL), document records, migrations, originals."""
