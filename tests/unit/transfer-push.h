/* The push side of the transfer engine's tests (transfer-push.c), run by
 * test_transfer.c's main before its check that every entry of the
 * transition table was taken. */
#ifndef AL_TRANSFER_PUSH_H
#define AL_TRANSFER_PUSH_H

void test_push_heads(void **state);
void test_push_small_blob(void **state);
void test_push_chunked(void **state);
void test_push_cut_between_chunks(void **state);
void test_push_resume_next_run(void **state);
void test_push_cut_inside_chunk(void **state);
void test_push_lost_twice(void **state);
void test_push_corrupt(void **state);
void test_push_corrupt_found_hashing(void **state);
void test_push_not_in_store(void **state);
void test_push_mount(void **state);
void test_push_manifest(void **state);
void test_push_session_elsewhere(void **state);

#define AL_TRANSFER_PUSH_TESTS                                                                     \
    cmocka_unit_test(test_push_heads), cmocka_unit_test(test_push_small_blob),                     \
        cmocka_unit_test(test_push_chunked), cmocka_unit_test(test_push_cut_between_chunks),       \
        cmocka_unit_test(test_push_resume_next_run), cmocka_unit_test(test_push_cut_inside_chunk), \
        cmocka_unit_test(test_push_lost_twice), cmocka_unit_test(test_push_corrupt),               \
        cmocka_unit_test(test_push_corrupt_found_hashing),                                         \
        cmocka_unit_test(test_push_not_in_store), cmocka_unit_test(test_push_mount),               \
        cmocka_unit_test(test_push_manifest), cmocka_unit_test(test_push_session_elsewhere)

#endif
