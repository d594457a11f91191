/* Fuzz target for --check: al_check_file on the input as an archive (tar,
 * gzip or zstd, whatever the bytes are). Checks that it never fails as a
 * call, that the counts add up, and that every member name and message it
 * reports has no control byte (they come from the archive). */
#include "fuzz-helpers.h"

#include <sys/mman.h>
#include <unistd.h>

#include "check.h"

/* No control byte (C0, DEL): what al_sanitize guarantees; JSON output
 * also needs valid UTF-8, which json_string() would refuse otherwise. */
static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("archive", MFD_CLOEXEC);
    FUZZ_CHECK(fd >= 0, "memfd_create");
    FUZZ_CHECK(al_write_all(fd, data, size) == 0, "write");
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    al_check_result r;
    FUZZ_CHECK(al_check_file(&r, path, NULL) == 0, "al_check_file failed as a call");
    FUZZ_CHECK(r.n_errors + r.n_notes == r.n_problems, "%zu errors + %zu notes != %zu", r.n_errors,
               r.n_notes, r.n_problems);
    for (size_t i = 0; i < r.n_problems; i++) {
        FUZZ_CHECK(printable(r.problems[i].message), "message not printable: %s",
                   r.problems[i].message);
        FUZZ_CHECK(r.problems[i].member == NULL || printable(r.problems[i].member),
                   "member not printable");
    }
    for (size_t i = 0; i < r.n_images; i++)
        FUZZ_CHECK(r.images[i].name == NULL || printable(r.images[i].name), "name not printable");
    char *json = al_check_report_json(&r, 1, "fuzz");
    FUZZ_CHECK(json != NULL && json[0] == '{', "no JSON");
    free(json);
    al_check_result_dispose(&r);
    close(fd);
    return 0;
}
