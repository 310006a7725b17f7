/* openapi_check.h - checks a JSON value against a schema of an OpenAPI 3.0
 * document, for the integration tests.
 *
 * Supports what api/openapi.yaml uses: $ref (local), type, nullable,
 * properties, required, additionalProperties: false, items, enum, minimum,
 * maximum, minItems, oneOf. Anything else in a schema is ignored.
 */
#ifndef PRISM_TEST_OPENAPI_CHECK_H
#define PRISM_TEST_OPENAPI_CHECK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The schema of the response (path, method, status, media type) in doc,
 * following a $ref to components/responses; NULL when the document does
 * not describe that response. */
json_t *openapi_response_schema(json_t *doc, const char *path, const char *method, int status,
                                const char *media_type);

/* true when value matches schema; else false with the reason (and the JSON
 * path of the offending value) in why. */
bool openapi_validate(json_t *doc, json_t *schema, json_t *value, char *why, size_t why_len);

#endif
