DROP TABLE saved_views;
DROP TABLE sessions;
DROP TABLE sign_in_tokens;
DROP TABLE users;
