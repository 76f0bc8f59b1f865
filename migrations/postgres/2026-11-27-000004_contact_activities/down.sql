DROP INDEX contact_activities_contact;
DROP TABLE contact_activities;
