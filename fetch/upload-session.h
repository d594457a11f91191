/* Where an interrupted upload can go on: STORE/tmp/upload-<blob hex>-<16
 * hex of sha256("HOST/REPO")>, a small JSON file (the registry, the
 * repository, the blob's digest and size, the session's URL as the
 * registry gave it in its last Location, the offset it confirmed). It
 * holds no credentials: a URL with a user part is never saved, and no
 * header is. Written after each chunk the registry accepted (temp file,
 * fsync, rename), removed when the upload completes or the registry has
 * lost it. airlock-fetch --prune removes one left alone for a week (the
 * age at which distribution purges its abandoned uploads).
 *
 * A store without a writable tmp/ (a read-only copy) saves nothing: the
 * push works, a new run starts its uploads over. Files are opened relative
 * to tmp/ with O_NOFOLLOW, like everything in the store. */
#ifndef AL_UPLOAD_SESSION_H
#define AL_UPLOAD_SESSION_H

#include <stdint.h>

#include "error.h"
#include "store.h"

/* The saved session of digest at host/repo: *url (malloc'd) and *offset,
 * or AL_E_NOT_FOUND when there is none (or one that does not describe this
 * blob of this size at this place, or is unreadable: such a file is
 * ignored). */
int al_upload_session_load(al_store *s, const char *host, const char *repo, const char *digest,
                           int64_t size, char **url, int64_t *offset, al_error **err);
/* Save (replacing) the session. A failure is returned, not logged; the
 * caller demotes it. */
int al_upload_session_save(al_store *s, const char *host, const char *repo, const char *digest,
                           int64_t size, const char *url, int64_t offset, al_error **err);
/* Remove it (no error when there is none). */
void al_upload_session_drop(al_store *s, const char *host, const char *repo, const char *digest);

/* "upload-<hex>-<16 hex>" (malloc'd). */
char *al_upload_session_name(const char *host, const char *repo, const char *digest);
/* Whether name looks like a session file's (for prune and verify). */
bool al_upload_session_is_name(const char *name);

#endif
