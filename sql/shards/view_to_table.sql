-- Back to a table: the view's rows are kept aside, the view goes (the schema then creates the table).
CREATE OR REPLACE TEMP TABLE "_rows_{table}" AS SELECT * FROM {table};
DROP VIEW {table};
