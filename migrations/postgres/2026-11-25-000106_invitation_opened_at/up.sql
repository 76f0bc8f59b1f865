-- When the survey page of an invitation was first opened (not an answer): reports can show
-- opened-but-not-answered.
ALTER TABLE invitations ADD COLUMN opened_at TIMESTAMP;
