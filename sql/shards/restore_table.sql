INSERT INTO {table} SELECT * FROM "_rows_{table}";
DROP TABLE "_rows_{table}";
