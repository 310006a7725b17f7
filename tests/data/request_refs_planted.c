/* Planted accesses for tests/check_request_refs.py: lines 7 and 9 touch
 * the count; the others only mention it. */
struct req { int refs; };
void f(struct req *r, struct req q)
{
    const char *s = "r->refs++"; /* r->refs in a string and a comment */
    r->refs++;
    (void)s;
    q . refs = 0;
}
