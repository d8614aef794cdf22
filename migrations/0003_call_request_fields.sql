-- What a call was requested with, and the final SIP response code Twilio reported
-- (CallData::sip_response_code, first_message and dynamic_variables).
--
-- One ALTER TABLE: a single catalog change and, for the CHECK, a single scan of existing rows
-- (all NULL, so it passes); no column needs a table rewrite (the defaults are constants).
-- The call_tallies triggers (0002) list the columns they track explicitly (client_id, status,
-- outcome, sentiment, duration), so writes that change only these columns leave the tallies
-- untouched.

ALTER TABLE calls
    ADD COLUMN sip_response_code INTEGER NULL
        CONSTRAINT calls_sip_response_code_check
        CHECK (sip_response_code BETWEEN 100 AND 699),
    -- BoundedText of at most call::limits::FIRST_MESSAGE characters.
    ADD COLUMN first_message TEXT NULL,
    -- A JSON object, keys sorted: text values as strings, Integer as a JSON integer, Number as
    -- a JSON float (always with '.' or an exponent), Bool as a boolean. TEXT, not jsonb, so the
    -- adapter reads back exactly what it wrote (jsonb would reorder keys).
    ADD COLUMN dynamic_variables TEXT NOT NULL DEFAULT '{}';
