/* Links against the installed library and checks its version and an error path. */
#include <errno.h>
#include <stdio.h>

#include <shm_channel.h>

int main(void)
{
    shm_channel_t *ch;
    int rc = shm_channel_open(&ch, "bad/name", SHM_CHANNEL_PRODUCER, SHM_CHANNEL_CREATE, 0, 0);
    if (shm_channel_version() >> 16 != SHM_CHANNEL_VERSION_MAJOR || rc != -EINVAL) {
        fprintf(stderr, "unexpected: version %x, rc %d\n", shm_channel_version(), rc);
        return 1;
    }
    printf("installed shm_channel %s works\n", shm_channel_version_string());
    return 0;
}
