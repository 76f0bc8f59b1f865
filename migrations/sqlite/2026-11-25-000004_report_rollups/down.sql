DROP TABLE answer_delay_daily;
DROP TABLE delivery_daily;
DROP TABLE response_daily;
