DROP INDEX followups_assignee;
