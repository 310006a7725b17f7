/* test_detect.c - PaliGemma's location tokens to boxes (engine/detect.c).
 *
 * Expected values are worked out by hand from big_vision's rule
 * (coordinate = bin / 1024 × the side; y_min, x_min, y_max, x_max; label up
 * to ';' or '<'), not taken from the code under test.
 */
#include <check.h>
#include <math.h>
#include <string.h>

#include "detect.h"

START_TEST(test_two_objects)
{
    detect_box b[4];
    const char *t = "<loc0256><loc0128><loc0768><loc0896> cat ; <loc0000><loc0000><loc1023><loc1023> "
                    "big dog";
    ck_assert_int_eq(detect_parse(t, 640, 480, b, 4), 2);
    /* 256/1024·480 = 120, 128/1024·640 = 80, 768/1024·480 = 360, 896/1024·640 = 560 */
    ck_assert(b[0].y_min == 120 && b[0].x_min == 80 && b[0].y_max == 360 && b[0].x_max == 560);
    ck_assert_str_eq(b[0].label, "cat");
    ck_assert_int_eq(b[0].loc[3], 896);
    /* 1023/1024·480 = 479.53125, 1023/1024·640 = 639.375: bins never reach the far edge */
    ck_assert(b[1].y_min == 0 && b[1].x_min == 0);
    ck_assert(b[1].y_max == 479.53125 && b[1].x_max == 639.375);
    ck_assert_str_eq(b[1].label, "big dog");
    ck_assert_int_eq(b[1].has_segments, 0);
}
END_TEST

START_TEST(test_segments_and_noise)
{
    detect_box b[4];
    char t[512] = "noise <loc0001><loc0002> <loc0512><loc0512><loc0512><loc0512>";
    for (int i = 0; i < 16; i++)
        strcat(t, "<seg007>");
    strcat(t, " person;<loc0100><loc0100><loc0200><loc0200><eos>");
    ck_assert_int_eq(detect_parse(t, 100, 200, b, 4), 2);
    /* the broken group (two locs) is skipped; segments are recognised, not decoded */
    ck_assert(b[0].y_min == 100 && b[0].x_min == 50);
    ck_assert_str_eq(b[0].label, "person");
    ck_assert_int_eq(b[0].has_segments, 1);
    /* a label may be empty: the text stops at '<' */
    ck_assert_str_eq(b[1].label, "");
    ck_assert(fabs(b[1].y_max - 200.0 / 1024 * 200) < 1e-12);
}
END_TEST

START_TEST(test_limits)
{
    detect_box b[1];
    ck_assert_int_eq(detect_parse("", 10, 10, b, 1), 0);
    ck_assert_int_eq(detect_parse("<loc12><loc0001><loc0001><loc0001><loc0001>x", 10, 10, b, 1), 1);
    ck_assert_str_eq(b[0].label, "x");
    /* more boxes than room: all counted, the first kept */
    ck_assert_int_eq(detect_parse("<loc0001><loc0001><loc0001><loc0001>a ; <loc0002><loc0002>"
                                  "<loc0002><loc0002>b", 10, 10, b, 1), 2);
    ck_assert_str_eq(b[0].label, "a");
    /* a long label is cut at a character boundary (é is 2 bytes) */
    char t[2048] = "<loc0001><loc0001><loc0001><loc0001>";
    for (int i = 0; i < 300; i++)
        strcat(t, "é");
    ck_assert_int_eq(detect_parse(t, 10, 10, b, 1), 1);
    ck_assert_int_eq((int)strlen(b[0].label), DETECT_LABEL_MAX - 2);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("detect");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_two_objects);
    tcase_add_test(tc, test_segments_and_noise);
    tcase_add_test(tc, test_limits);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
