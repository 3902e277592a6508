-- knowrl registry schema, version 4: the fingerprints of the data and model each run read (part of its id).
ALTER TABLE runs ADD COLUMN IF NOT EXISTS inputs JSON;
