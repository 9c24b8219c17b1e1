"""`nerve evaluate`: one engine over several datasets, each a label job, compared with the papers' tables."""
