"""Numbers -> what a user reads: documents rendered as tables, markdown or CSV, JSON, pictures."""
