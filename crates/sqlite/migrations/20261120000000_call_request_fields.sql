-- What a call was requested with, and the final SIP response code Twilio reported
-- (CallData::sip_response_code, first_message and dynamic_variables). Same names and meaning
-- as PostgreSQL's migrations/0003_call_request_fields.sql. Existing rows get NULL / '{}',
-- which the constraints accept (SQLite checks an added CHECK against existing rows).

ALTER TABLE calls ADD COLUMN sip_response_code INTEGER
    CHECK (sip_response_code BETWEEN 100 AND 699);
-- BoundedText of at most call::limits::FIRST_MESSAGE characters.
ALTER TABLE calls ADD COLUMN first_message TEXT;
-- A JSON object, keys sorted: text values as strings, Integer as a JSON integer, Number as a
-- JSON float (always with '.' or an exponent), Bool as a boolean.
ALTER TABLE calls ADD COLUMN dynamic_variables TEXT NOT NULL DEFAULT '{}';
