//! Helpers for the black-box tests: start the real binary, talk to it over HTTP.
