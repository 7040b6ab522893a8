"""Query: a Directus query as Kiln models, checks and stores it.

`filters` is the model (a filter tree plus fields, sort, paging, search) in its three forms;
`querystring` reads and writes the bracket rows Directus URLs and Clay hold; `querycheck`
says what Directus would refuse or misread against a schema; `drift` checks a saved sync's
query and template against the schema Directus has now.
"""
