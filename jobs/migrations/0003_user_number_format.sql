-- A user's alerts may write numbers with a decimal comma (1.234.567,89):
-- read so for that user only, never guessed (docs/pipeline.md, "Numbers").
ALTER TABLE users ADD COLUMN decimal_comma boolean NOT NULL DEFAULT false;
