/* serve.c - `prism serve`: startup, signals, drain, teardown.
 *
 * Startup: parse the settings, start listening (so /healthz answers and
 * /readyz says 503 "loading"), load the model, its tokenizer and image
 * preprocessing, start the preprocessing pool, the watcher and the engine
 * worker; the engine worker runs one warm-up batch per task and then marks
 * the server ready.
 *
 * Signals: SIGTERM and SIGINT are blocked in every thread and read from a
 * signalfd by the main thread, so no code runs in signal context. The first
 * one drains: /readyz answers 503, new work is refused with 503 (and
 * `Connection: close`), every request already received is answered; then
 * the server stops accepting connections (new ones are refused), lets
 * every open connection finish sending its answer, and exits 0. A second
 * signal, or a drain longer than the request timeout + 5 s, answers what is
 * left with 503 and ends open streams with an error event and [DONE]
 * (request.c: req_abort_all); the exit status is 0 when every request then
 * has its answer, 1 when some connection could not be answered in 2 s.
 */
#define _GNU_SOURCE
#include "serve.h"

#include "backend_fault.h"
#include "device.h"

#include <dirent.h>
#include <errno.h>
#include <libgen.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server.h"

static void ctx_free(srv_ctx *s)
{
    http_stop(s);
    router_stop(s);
    prep_destroy(s->prep);
    s->prep = NULL;
    watcher_stop(s);
    siglip_free(s->model);
    pali_gen_free(s->gen);
    pali_free(s->pali);
    florence2_post_config_free(s->f2_post);
    if (s->backend)
        prism_backend_destroy(s->backend);
    if (s->device)
        prism_backend_destroy(s->device);
    inputs_free(s->inputs);
    lcache_free(s->labels);
    metrics_destroy(&s->metrics);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->idle);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

/* A model directory without a processor file: transformers would refuse
 * it; prism takes SiglipImageProcessor's defaults and says so. */
static void log_image_defaults(const srv_log *log, const char *dir, int size)
{
    char detail[4500];
    snprintf(detail, sizeof detail,
             "%s has no processor_config.json or preprocessor_config.json: images are "
             "preprocessed with SiglipImageProcessor's defaults (bicubic, rescale 1/255, mean "
             "and std 0.5) at the vision tower's %dx%d", dir, size, size);
    log_msg(log, LOG_WARN, "image_preprocessing", detail);
}

/* A pali3, PaliGemma or Florence-2 model from dir: weights, the generation batch, image preprocessing. */
static int load_pali(srv_ctx *s, const char *dir, prism_error *err)
{
    pali_limits lim = {.max_batch = (int)s->cfg.gen_max_batch,
                       .max_seqs = (int)s->cfg.gen_max_sequences,
                       .max_new_tokens = (int)s->cfg.gen_max_new_tokens,
                       .max_prompt_tokens = (int)s->cfg.gen_max_prompt_tokens,
                       .max_beams = (int)s->cfg.gen_max_beams};
    if (lim.max_beams > lim.max_seqs)
        return prism_errorf(err, "--gen-max-beams %d is more than --gen-max-sequences %d (each "
                            "beam is one decoder sequence)", lim.max_beams, lim.max_seqs);
    if (pali_load(&s->pali, dir, s->backend, &lim, err) || pali_gen_create(&s->gen, s->pali, err))
        return -1;
    const pali_info *info = pali_get_info(s->pali);
    if (info->florence2) {
        /* answers are post-processed text: the tokenizer is not optional */
        if (!info->has_tokenizer)
            return prism_errorf(err, "%s: a Florence-2 model needs its tokenizer (tokenizer.json, "
                                "or vocab.json and merges.txt)", dir);
        if (florence2_post_config_load(&s->f2_post, dir, err))
            return -1;
    }
#if defined(PRISM_HAVE_IMAGE)
    const int size = pali_get_config(s->pali)->vision.image_size;
    if (image_preproc_load(&s->pali_pre, dir, err))
        return -1;
    if (s->pali_pre.source == IMAGE_PREPROC_DEFAULTS) {
        /* as `prism caption`: SigLIP's defaults at the tower's size, said aloud */
        s->pali_pre.width = s->pali_pre.height = size;
        log_image_defaults(&s->log, dir, size);
    }
    if (s->pali_pre.width != size || s->pali_pre.height != size)
        return prism_errorf(err, "%s/%s: the image processor's size %dx%d differs from the "
                            "vision tower's %d", dir, image_preproc_source_name(&s->pali_pre),
                            s->pali_pre.width, s->pali_pre.height, size);
#endif
    return 0;
}

/* The backend --device and --dtype ask for (device.h); the choice is logged. */
static prism_backend *create_backend(srv_ctx *s, prism_error *err)
{
    char note[400];
    prism_backend *be = device_backend_create(s->cfg.device, s->cfg.dtype, (int)s->cfg.threads,
                                              false, note, sizeof note, err);
    if (be)
        log_msg(&s->log, LOG_INFO, "device", note);
    return be;
}

/* Bytes of the *.safetensors files in dir (0 when none or unreadable: the
 * loader then names what is missing). */
static long long weight_file_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    long long total = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        const size_t n = strlen(e->d_name);
        if (n < 12 || strcmp(e->d_name + n - 12, ".safetensors") != 0)
            continue;
        char path[4096];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &sb) == 0)
            total += (long long)sb.st_size;
    }
    if (d)
        closedir(d);
    return total;
}

/* The memory the weights may use: --memory-limit, else the cgroup v2 / v1
 * limit of this container, else the machine's RAM (*source says which). */
static long long memory_limit(const srv_ctx *s, const char **source)
{
    if (s->cfg.memory_limit > 0) {
        *source = "--memory-limit";
        return s->cfg.memory_limit;
    }
    static const char *const files[] = {"/sys/fs/cgroup/memory.max",
                                        "/sys/fs/cgroup/memory/memory.limit_in_bytes"};
    long long ram = (long long)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGESIZE);
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(files[i], "r");
        long long v = 0;
        int got = f ? fscanf(f, "%lld", &v) : 0; /* "max" reads as no number: no limit */
        if (f)
            fclose(f);
        if (got == 1 && v > 0 && (ram <= 0 || v < ram)) {
            *source = files[i];
            return v;
        }
    }
    *source = "the machine's RAM";
    return ram;
}

static const char *human_bytes(char *buf, size_t n, long long v)
{
    if (v >= 1000000000LL)
        snprintf(buf, n, "%.2f GB", v / 1e9);
    else if (v >= 1000000LL)
        snprintf(buf, n, "%.1f MB", v / 1e6);
    else
        snprintf(buf, n, "%lld bytes", v);
    return buf;
}

/* Refuses checkpoints that cannot be resident at once: the weights are
 * mapped and read at every token, so weights past the memory would be read
 * from disk again and again (or the process killed), never served. */
static int check_memory(const srv_ctx *s, prism_error *err)
{
    const char *src = "";
    const long long limit = memory_limit(s, &src);
    long long need = weight_file_bytes(s->cfg.model);
    if (s->cfg.generative_model[0])
        need += weight_file_bytes(s->cfg.generative_model);
    if (limit > 0 && need > limit) {
        char a[32], b[32];
        return prism_errorf(err, "the checkpoints' weight files are %s%s; the memory limit is "
                            "%s (%s): too large to serve here (a BF16 copy of the checkpoint "
                            "halves float32 weights)", human_bytes(a, sizeof a, need),
                            s->cfg.generative_model[0] ? " together" : "",
                            human_bytes(b, sizeof b, limit), src);
    }
    return 0;
}

static int load_model(srv_ctx *s, prism_error *err)
{
    if (check_memory(s, err))
        return -1;
    double t0 = prism_now();
    s->backend = create_backend(s, err);
    if (!s->backend)
        return -1;
    if (s->cfg.test_fault[0]) {
        prism_backend *f = prism_fault_backend_create(s->backend, s->cfg.test_fault, err);
        if (!f)
            return prism_error_prefix(err, "--test-fault");
        prism_fault_arm(f, false); /* armed after warm-up (engine_ready) */
        s->device = s->backend;
        s->backend = f;
    }
    const bool both = s->cfg.generative_model[0] != '\0';
    if (pali_is_generation_dir(s->cfg.model)) {
        if (both)
            return prism_errorf(err, "--generative-model needs a SigLIP --model; %s is a "
                                "generation model", s->cfg.model);
        if (load_pali(s, s->cfg.model, err))
            return -1;
        s->metrics.model_load_seconds = prism_now() - t0;
        s->created = (int64_t)time(NULL);
        return 0;
    }
    if (both && !pali_is_generation_dir(s->cfg.generative_model))
        return prism_errorf(err, "--generative-model %s: not a pali3, paligemma or florence2 model "
                            "(config.json's model_type)", s->cfg.generative_model);
    long mb = s->cfg.max_batch_image > s->cfg.max_batch_text ? s->cfg.max_batch_image
                                                             : s->cfg.max_batch_text;
    /* a NaFlex model takes images of up to --max-num-patches patches */
    if (siglip_load_ex(&s->model, s->cfg.model, s->backend, (int)mb, (int)s->cfg.max_num_patches,
                       err))
        return -1;
    s->dim = siglip_embed_dim(s->model);
    if (inputs_load(&s->inputs, s->cfg.model, siglip_get_config(s->model), err))
        return -1;
    if (inputs_naflex(s->inputs) && inputs_default_patches(s->inputs) > s->cfg.max_num_patches)
        return prism_errorf(err, "--max-num-patches %lld is below the model's default "
                            "max_num_patches %d (its processor settings): requests without "
                            "max_num_patches could not be served", s->cfg.max_num_patches,
                            inputs_default_patches(s->inputs));
    if (inputs_image_defaults(s->inputs)) {
        char detail[4500];
        inputs_defaults_note(s->inputs, s->cfg.model, detail, sizeof detail);
        log_msg(&s->log, LOG_WARN, "image_preprocessing", detail);
    }
    s->labels = lcache_create((size_t)s->cfg.label_cache, (size_t)s->cfg.label_cache_bytes, s->dim);
    if (!s->labels)
        return prism_errorf(err, "out of memory for the label cache");
    if (both && load_pali(s, s->cfg.generative_model, err))
        return -1;
    s->metrics.model_load_seconds = prism_now() - t0;
    s->created = (int64_t)time(NULL);
    return 0;
}

/* The base name of a model directory, trailing slashes ignored. */
static void dir_name(const char *path, char *out, size_t n)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    size_t k = strlen(dir);
    while (k > 1 && dir[k - 1] == '/')
        dir[--k] = '\0';
    snprintf(out, n, "%s", basename(dir));
}

/* Waits until every received request is answered, or `until`. */
static bool wait_idle(srv_ctx *s, double until, int sfd)
{
    for (;;) {
        pthread_mutex_lock(&s->mu);
        long open = s->open_requests;
        pthread_mutex_unlock(&s->mu);
        if (open == 0)
            return true;
        double left = until - prism_now();
        if (left <= 0)
            return false;
        /* a second signal ends the wait early */
        struct pollfd p = {.fd = sfd, .events = POLLIN};
        if (poll(&p, 1, left > 0.05 ? 50 : (int)(left * 1e3) + 1) > 0)
            return false;
    }
}

int serve_main(int argc, char **argv, int first)
{
    srv_ctx *s = calloc(1, sizeof *s);
    if (!s) {
        fprintf(stderr, "prism serve: out of memory\n");
        return 1;
    }
    char msg[512];
    int rc = config_parse(&s->cfg, argc, argv, first, stdout, msg, sizeof msg);
    if (rc) {
        if (rc < 0)
            fprintf(stderr, "prism serve: %s\n", msg);
        free(s);
        return rc < 0 ? 2 : 0;
    }
    log_init(&s->log, s->cfg.log_format, s->cfg.log_level, stderr);
    /* Request bodies and decoded images are megabytes each: a fixed mmap
     * threshold keeps every such block in its own mapping, returned to the
     * system when freed (glibc would otherwise raise the threshold after
     * the first large free and keep later ones in its heaps). */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);
    if (s->cfg.model_name[0]) {
        snprintf(s->model_name, sizeof s->model_name, "%s", s->cfg.model_name);
    } else {
        dir_name(s->cfg.model, s->model_name, sizeof s->model_name);
    }
    if (s->cfg.generative_model[0]) /* both models: the generative one by its directory */
        dir_name(s->cfg.generative_model, s->gen_model_name, sizeof s->gen_model_name);
    else
        snprintf(s->gen_model_name, sizeof s->gen_model_name, "%s", s->model_name);
    s->t_start = prism_now();
    s->id_salt = (uint32_t)getpid() * 2654435761u ^ (uint32_t)time(NULL);
    s->watcher_efd = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* prism_now's clock */
    pthread_cond_init(&s->work, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&s->idle, NULL);
    metrics_init(&s->metrics);

    /* signals: blocked everywhere (threads inherit the mask), read here */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
    if (sfd < 0) {
        log_msg(&s->log, LOG_ERROR, "cannot create a signalfd", strerror(errno));
        ctx_free(s);
        return 1;
    }

    char settings[2048];
    config_describe(&s->cfg, settings, sizeof settings);
    log_msg(&s->log, LOG_INFO, "starting", settings);
    if (http_start(s, msg, sizeof msg)) {
        log_msg(&s->log, LOG_ERROR, "cannot start the HTTP server", msg);
        close(sfd);
        ctx_free(s);
        return 1;
    }
    log_line ln;
    log_begin(&ln, &s->log, LOG_INFO, "listening");
    log_str(&ln, "host", s->cfg.host);
    log_int(&ln, "port", http_port(s));
    log_end(&ln);

    prism_error err = {0};
    const int load_failed = load_model(s, &err);
    if (!load_failed && (s->prep = prep_create((int)s->cfg.prep_threads)))
        atomic_store(&s->loaded, true); /* publishes the backend, models and pool */
    if (load_failed || !s->prep || watcher_start(s) || router_start(s)) {
        log_msg(&s->log, LOG_ERROR, "startup failed", err.msg[0] ? err.msg : "cannot start threads");
        close(sfd);
        ctx_free(s);
        return 1;
    }
    log_begin(&ln, &s->log, LOG_INFO, "model loaded");
    log_str(&ln, "model", s->model_name);
    if (s->model) /* a pali3-only server has no embedding dimension */
        log_int(&ln, "dim", s->dim);
    log_str(&ln, "backend", s->backend->ops->name);
    log_int(&ln, "threads", s->backend->n_threads);
    log_num(&ln, "load_ms", s->metrics.model_load_seconds * 1e3);
    if (s->pali && s->model) {
        log_str(&ln, "kind", "siglip+pali3");
        log_str(&ln, "generative_model", s->gen_model_name);
    } else if (s->pali) {
        log_str(&ln, "kind", "pali3");
    } else {
        log_str(&ln, "images", inputs_have_images(s->inputs) ? "yes" : inputs_why_no_images(s->inputs));
        log_str(&ln, "texts", inputs_have_texts(s->inputs) ? "yes" : inputs_why_no_texts(s->inputs));
    }
    log_end(&ln);

    /* wait for SIGTERM / SIGINT */
    struct signalfd_siginfo si;
    for (;;) {
        ssize_t k = read(sfd, &si, sizeof si);
        if (k == (ssize_t)sizeof si)
            break;
        if (k < 0 && errno != EINTR)
            break;
    }
    atomic_store(&s->draining, true);
    atomic_store(&s->ready, false);
    pthread_mutex_lock(&s->mu);
    long open = s->open_requests;
    pthread_mutex_unlock(&s->mu);
    log_begin(&ln, &s->log, LOG_INFO, "draining");
    log_str(&ln, "signal", si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
    log_int(&ln, "open_requests", open);
    log_end(&ln);
    bool clean = wait_idle(s, prism_now() + s->cfg.request_timeout_s + 5, sfd);
    if (!clean) {
        log_msg(&s->log, LOG_WARN, "drain cut short",
                "answering what is left with 503; open streams end with an error event");
        req_abort_all(s);
        clean = wait_idle(s, prism_now() + 2, -1); /* every request has its answer */
    }
    /* stop accepting, then let every answer already queued (the 503s of
     * late arrivals included) reach its client before the daemon stops */
    http_quiesce(s);
    close(sfd);
    ctx_free(s);
    return clean ? 0 : 1;
}
