-- The example dataset restore.sh "restores" (it counts the statements).
CREATE TABLE pings (id serial PRIMARY KEY, answer text NOT NULL);
INSERT INTO pings (answer) VALUES ('pong');
INSERT INTO pings (answer) VALUES ('{"value":"pong"}');
