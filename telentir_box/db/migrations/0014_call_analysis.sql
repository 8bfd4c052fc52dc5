-- The verdict of ElevenLabs' analysis of a call (call_successful): 1 success, 0
-- failure, NULL when there was no analysis or it could not tell. Operational metadata
-- for the reports' success rate; the analysis itself lives in the user's store.
ALTER TABLE calls ADD COLUMN successful INTEGER;

-- Reports sum the calls started in a window.
CREATE INDEX calls_by_start ON calls (started_at);
