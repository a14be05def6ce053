/* SPDX-License-Identifier: MIT */
/* plugin: the collectd glue of the usage plugin. Registers the config,
 * init and shutdown callbacks, one complex read callback per source block
 * (its own interval, the source as user data) with a scrape thread per
 * block, and connects the sources' commits to collectd (dispatch) and to
 * the store the exporter serves. The store, the exporter and the list of
 * sources for its status page are the only process-wide state.
 *
 * Why a thread per block: on SIGTERM collectd 5.12 first stops its read
 * threads, joining each (so waiting for a read callback under way), and
 * only then frees the read callbacks' user data and calls the shutdown
 * callbacks. A read callback that ran a whole scrape (2,000 Jasper pages,
 * a Retry-After sleep) would hold the stop that long. So the block's
 * scrapes run on its own thread (usage_source_loop); the read callback
 * asks for one and waits READ_WAIT at most, which is all collectd's stop
 * waits for; then freeing the user data (source_free) stops the source,
 * which aborts its transfer in flight and ends its sleeps, and joins the
 * thread. A scrape shorter than READ_WAIT ends inside its read callback,
 * as collectd expects of a read plugin. */
#include "collectd.h"
#include "plugin.h"

#include "dispatch.h"
#include "exporter.h"
#include "families.h"
#include "shard.h"
#include "source.h"
#include "store.h"
#include "text.h"
#include "usage_conf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static usage_conf_t conf;
static usage_store_t *store;
static usage_exporter_t *exporter;
static usage_source_t **sources; /* for the status page; owned by collectd */
static size_t sources_num;
static pthread_mutex_t sources_lock = PTHREAD_MUTEX_INITIALIZER;

static void sink_log(void *ud, int level, const char *msg) {
  (void)ud;
  plugin_log(level, "%s", msg);
}

/* READ_WAIT: how long a read callback waits for the scrape it asked for
 * (seconds); what collectd's stop may wait for, at most, on this plugin.
 * A scrape still running then goes on on its thread. */
#define READ_WAIT 0.5

/* What one source needs from the glue: its dispatcher, its interval (the
 * scrape thread's plugin context) and the scrape thread. */
typedef struct {
  usage_dispatch_t *dispatch;
  cdtime_t interval;
  pthread_t thread;
  int started;
} glue_t;

static int sink_commit(void *ud, usage_batch_t *b) {
  const glue_t *g = ud;
  usage_dispatch_batch(g->dispatch, b);
  return usage_store_commit(store, b);
}

static void glue_free(glue_t *g) {
  if (g == NULL)
    return;
  usage_dispatch_destroy(g->dispatch);
  free(g);
}

/* glue_create: the dispatcher of source c, with the families its vendor
 * leaves to the exporter; NULL on ENOMEM. */
static glue_t *glue_create(const usage_source_conf_t *c, cdtime_t interval) {
  unsigned char skip[FAM_COUNT] = {0};
  const usage_vendor_t *v = usage_vendor(c->kind);
  int skipped = 0;
  for (int fam = 0; fam < FAM_COUNT; fam++)
    if (v != NULL && v->dispatched != NULL &&
        !v->dispatched(c, fam, conf.exporter != NULL))
      skip[fam] = skipped = 1;
  if (skipped)
    INFO("usage plugin: %s \"%s\": the per-device series go to the exporter "
         "only (DispatchPerDevice false)",
         usage_kind_block(c->kind), c->name);
  glue_t *g = calloc(1, sizeof(*g));
  if (g == NULL)
    return NULL;
  g->dispatch = usage_dispatch_create(interval, skip);
  if (g->dispatch == NULL) {
    free(g);
    return NULL;
  }
  usage_dispatch_set_meta_data(g->dispatch, c->meta_data);
  g->interval = interval;
  return g;
}

/* scrape_thread: the body of a block's scrape thread. Started with
 * plugin_thread_create from init, it has the plugin's context (the name
 * "usage" that collectd's log and write path use); the interval is the
 * block's, as in its read callback's context. */
static void *scrape_thread(void *p) {
  usage_source_t *s = p;
  const glue_t *g = usage_source_sink_ud(s);
  plugin_ctx_t ctx = plugin_get_ctx();
  ctx.interval = g->interval;
  plugin_set_ctx(ctx);
  usage_source_loop(s);
  return NULL;
}

static int usage_read(user_data_t *ud) {
  usage_source_trigger(ud->data, READ_WAIT);
  /* Always 0: an upstream failure is reported through usage_source_up;
   * an error here would make collectd back off up to MaxReadInterval. */
  return 0;
}

/* source_free: collectd frees a read callback's user data after its read
 * threads have stopped (at shutdown, before the shutdown callbacks), after
 * the single read of `collectd -T`, and when the callback is unregistered:
 * the scrape under way is stopped, not waited for. */
static void source_free(void *p) {
  usage_source_t *s = p;
  glue_t *g = usage_source_sink_ud(s);
  usage_source_stop(s);
  if (g->started)
    pthread_join(g->thread, NULL);
  glue_free(g);
  pthread_mutex_lock(&sources_lock);
  for (size_t i = 0; i < sources_num; i++)
    if (sources[i] == s)
      sources[i] = NULL;
  pthread_mutex_unlock(&sources_lock);
  usage_source_destroy(s);
}

static void fmt_time(char *buf, size_t size, double t) {
  if (t <= 0) {
    snprintf(buf, size, "never");
    return;
  }
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* exporter_log: what the exporter has to say about its limits. */
static void exporter_log(void *ud, const char *msg) {
  (void)ud;
  WARNING("usage plugin: Exporter: %s", msg);
}

/* status_page lists each source on the exporter's / page; for a reader
 * who has not authenticated the last error is redacted (it may quote
 * filter values and e-mail addresses). */
static void status_page(void *ud, int redact, usage_buf_t *out) {
  (void)ud;
  usage_buf_puts(out, "<table>\n<tr><th>source</th><th>kind</th>"
                      "<th>last scrape</th><th>duration</th><th>result</th>"
                      "<th>last success</th><th>series</th>"
                      "<th>sign-in</th><th>last error</th></tr>\n");
  pthread_mutex_lock(&sources_lock);
  for (size_t i = 0; i < sources_num; i++) {
    usage_source_t *s = sources[i];
    if (s == NULL)
      continue;
    usage_source_status_t st;
    usage_source_get_status(s, &st);
    char last[64], ok[64];
    fmt_time(last, sizeof(last), st.last_scrape);
    fmt_time(ok, sizeof(ok), st.last_success);
    usage_buf_puts(out, "<tr><td>");
    usage_html_escape(out, usage_source_conf(s)->name);
    usage_buf_printf(out,
                     "</td><td>%s</td><td>%s</td><td>%.3f s</td>"
                     "<td>%s</td><td>%s</td><td>%zu</td><td>",
                     usage_kind_name(usage_source_conf(s)->kind), last,
                     st.last_duration,
                     st.last_scrape <= 0 ? "pending" : (st.up ? "up" : "down"),
                     ok, usage_store_series(store, usage_source_conf(s)->name));
    char login[96];
    usage_source_login_text(s, usage_now(), login, sizeof(login));
    usage_buf_puts(out, login);
    usage_buf_puts(out, "</td><td>");
    if (redact) {
      char text[sizeof(st.last_error) * 2];
      usage_text_redact(text, sizeof(text), st.last_error);
      usage_html_escape(out, text);
    } else {
      usage_html_escape(out, st.last_error);
    }
    usage_buf_puts(out, "</td></tr>\n");
  }
  pthread_mutex_unlock(&sources_lock);
  usage_buf_puts(out, "</table>\n");
}

static int usage_config(oconfig_item_t *ci) {
  usage_conf_t more = {0};
  if (usage_config_parse(ci, &more) != 0)
    return -1;
  /* Several <Plugin usage> blocks add up. */
  if (more.exporter != NULL && conf.exporter != NULL) {
    ERROR("usage plugin: only one <Exporter> block is allowed");
    usage_conf_clear(&more);
    return -1;
  }
  for (size_t i = 0; i < more.sources_num; i++)
    for (size_t j = 0; j < conf.sources_num; j++)
      if (strcmp(more.sources[i]->name, conf.sources[j]->name) == 0) {
        ERROR("usage plugin: source \"%s\" is configured twice",
              more.sources[i]->name);
        usage_conf_clear(&more);
        return -1;
      }
  /* Two blocks writing one StateFile would overwrite each other's state. */
  for (size_t i = 0; i < more.sources_num; i++)
    for (size_t j = 0; j < conf.sources_num + i; j++) {
      const usage_source_conf_t *a = more.sources[i];
      const usage_source_conf_t *b = j < conf.sources_num
                                         ? conf.sources[j]
                                         : more.sources[j - conf.sources_num];
      if (a->state_file != NULL && b->state_file != NULL &&
          strcmp(a->state_file, b->state_file) == 0) {
        ERROR("usage plugin: %s \"%s\" and %s \"%s\": option \"StateFile\": "
              "both name \"%s\"; give each block its own file",
              usage_kind_block(b->kind), b->name, usage_kind_block(a->kind),
              a->name, a->state_file);
        usage_conf_clear(&more);
        return -1;
      }
    }
  usage_source_conf_t **p = realloc(
      conf.sources, (conf.sources_num + more.sources_num) * sizeof(*p) + 1);
  if (p == NULL) {
    usage_conf_clear(&more);
    return -1;
  }
  conf.sources = p;
  memcpy(p + conf.sources_num, more.sources, more.sources_num * sizeof(*p));
  conf.sources_num += more.sources_num;
  if (more.exporter != NULL)
    conf.exporter = more.exporter;
  if (more.shards != 0) {
    conf.shard = more.shard;
    conf.shards = more.shards;
  }
  if (more.replicas != 0) {
    conf.replica = more.replica;
    conf.replicas = more.replicas;
  }
  free(more.sources);
  return 0;
}

/* shard_setup settles this instance's shard (USAGE_SHARD overrides the
 * Shard option), checks every block's own Shard, divides each account's
 * request budget among all its blocks, and publishes usage_shard_info.
 * 0 or -1 after logging the problem. */
static char replica_text[16];

static int shard_setup(void) {
  const char *env = getenv("USAGE_SHARD");
  if (env != NULL && env[0] != 0) {
    if (usage_shard_parse(env, &conf.shard, &conf.shards) != 0) {
      ERROR("usage plugin: environment USAGE_SHARD=\"%s\": expected "
            "\"M/N\" with 1 <= M <= N <= %d",
            env, USAGE_SHARD_MAX);
      return -1;
    }
  }
  if (conf.shards == 0)
    conf.shard = conf.shards = 1;
  env = getenv("USAGE_REPLICA");
  if (env != NULL && env[0] != 0) {
    if (usage_shard_parse(env, &conf.replica, &conf.replicas) != 0) {
      ERROR("usage plugin: environment USAGE_REPLICA=\"%s\": expected "
            "\"M/N\" with 1 <= M <= N <= %d",
            env, USAGE_SHARD_MAX);
      return -1;
    }
  }
  for (size_t i = 0; i < conf.sources_num; i++) {
    const usage_source_conf_t *c = conf.sources[i];
    if (usage_shard_owner(c, conf.shards) == 0) {
      ERROR("usage plugin: %s \"%s\": option \"Shard\": %u is above the "
            "number of shards (%u)",
            usage_kind_block(c->kind), c->name, c->shard, conf.shards);
      return -1;
    }
  }
  usage_shard_budget(conf.sources, conf.sources_num);
  usage_shard_replicas(conf.sources, conf.sources_num, conf.replica,
                       conf.replicas);
  char m[16], n[16];
  snprintf(m, sizeof(m), "%u", conf.shard);
  snprintf(n, sizeof(n), "%u", conf.shards);
  snprintf(replica_text, sizeof(replica_text), "%u", conf.replica);
  usage_batch_t *b = usage_batch_create("", "shard");
  /* the replica label only where replicas are configured: without them
   * the series is exactly the contract's */
  if (b != NULL &&
      (conf.replicas > 1
           ? usage_batch_add(b, FAM_SHARD_INFO, 1, "shard", m, "shards", n,
                             "replica", replica_text, NULL)
           : usage_batch_add(b, FAM_SHARD_INFO, 1, "shard", m, "shards", n,
                             NULL)) == 0)
    usage_store_commit(store, b);
  else
    usage_batch_destroy(b);
  return 0;
}

/* shard_owned: whether this instance scrapes the block; publishes
 * usage_shard_source_info for the blocks it owns. */
static int shard_owned(const usage_source_conf_t *c) {
  unsigned owner = usage_shard_owner(c, conf.shards);
  if (owner != conf.shard)
    return 0;
  char m[16];
  snprintf(m, sizeof(m), "%u", owner);
  usage_batch_t *b = usage_batch_create(c->name, "shard");
  if (b != NULL &&
      (conf.replicas > 1
           ? usage_batch_add(b, FAM_SHARD_SOURCE_INFO, 1, "kind",
                             usage_kind_name(c->kind), "shard", m, "replica",
                             replica_text, NULL)
           : usage_batch_add(b, FAM_SHARD_SOURCE_INFO, 1, "kind",
                             usage_kind_name(c->kind), "shard", m, NULL)) == 0)
    usage_store_commit(store, b);
  else
    usage_batch_destroy(b);
  if (c->account_blocks > 1 && c->max_rps > 0)
    INFO("usage plugin: %s \"%s\": %u blocks (or replicas) reach the same "
         "account; this "
         "one may send %.3g requests per second",
         usage_kind_block(c->kind), c->name, c->account_blocks, c->max_rps);
  return 1;
}

/* unregister_reads removes the read callbacks usage_init registered
 * (collectd frees their sources): a failed start leaves nothing running.
 * collectd itself would only unregister a callback named "usage". */
static void unregister_reads(void) {
  for (size_t i = 0; i < sources_num; i++) {
    char name[256] = "";
    pthread_mutex_lock(&sources_lock);
    usage_source_t *s = sources[i];
    if (s != NULL)
      snprintf(name, sizeof(name), "usage/%s/%s",
               usage_kind_name(usage_source_conf(s)->kind),
               usage_source_conf(s)->name);
    pthread_mutex_unlock(&sources_lock);
    if (s != NULL)
      plugin_unregister_read(name);
  }
}

static int usage_init(void) {
  if (store != NULL)
    return 0; /* init runs again after a failed start of another plugin */
  if (usage_http_global_init() != 0) {
    ERROR("usage plugin: cannot initialise libcurl");
    return -1;
  }
  store = usage_store_create();
  sources = calloc(conf.sources_num + 1, sizeof(*sources));
  if (store == NULL || sources == NULL) {
    ERROR("usage plugin: out of memory");
    return -1;
  }
  usage_batch_t *b = usage_batch_create("", "build");
  if (b != NULL && usage_batch_add(b, FAM_EXPORTER_BUILD_INFO, 1, "version",
                                   PACKAGE_VERSION, NULL) == 0)
    usage_store_commit(store, b);
  else
    usage_batch_destroy(b);

  if (shard_setup() != 0)
    return -1;

  /* The exporter starts first: when it cannot, no read callback has been
   * registered, so nothing scrapes while the log says the plugin failed. */
  if (conf.exporter != NULL) {
    const usage_exporter_conf_t *x = conf.exporter;
    usage_exporter_opts_t opts = {.address = x->address,
                                  .port = x->port,
                                  .threads = x->threads,
                                  .max_conns = x->max_conns,
                                  .max_per_ip = x->max_per_ip,
                                  .timeout_s = x->idle_timeout,
                                  .request_timeout_s = x->request_timeout,
                                  .mem_limit = x->memory_limit,
                                  .tls_cert_file = x->tls_cert_file,
                                  .tls_key_file = x->tls_key_file,
                                  .tls_client_ca_file = x->tls_client_ca_file,
                                  .users = x->users,
                                  .users_num = x->users_num,
                                  .page = status_page,
                                  .log = exporter_log};
    char err[256];
    exporter = usage_exporter_start(&opts, store, err, sizeof(err));
    if (exporter == NULL) {
      ERROR("usage plugin: Exporter: %s; nothing is scraped", err);
      return -1;
    }
    INFO("usage plugin: exporter listening on %s://%s%s%s:%s/metrics%s",
         x->tls_cert_file ? "https" : "http",
         strchr(conf.exporter->address, ':') ? "[" : "", conf.exporter->address,
         strchr(conf.exporter->address, ':') ? "]" : "", conf.exporter->port,
         x->users_num ? " (Basic auth)" : "");
  }

  usage_sink_t sink = {.log = sink_log, .commit = sink_commit};
  size_t skipped = 0;
  for (size_t i = 0; i < conf.sources_num; i++) {
    usage_source_conf_t *c = conf.sources[i];
    conf.sources[i] = NULL;
    if (!shard_owned(c)) {
      usage_source_conf_free(c);
      skipped++;
      continue;
    }
    char name[256];
    snprintf(name, sizeof(name), "usage/%s/%s", usage_kind_name(c->kind),
             c->name);
    cdtime_t interval = c->interval > 0 ? DOUBLE_TO_CDTIME_T(c->interval) : 0;
    glue_t *g = glue_create(c, interval > 0 ? interval : plugin_get_interval());
    if (g == NULL) {
      usage_source_conf_free(c);
      goto fail;
    }
    if (c->scrape_timeout <= 0) /* ScrapeTimeout defaults to the Interval */
      c->scrape_timeout = CDTIME_T_TO_DOUBLE(g->interval);
    sink.ud = g;
    usage_source_t *s = usage_source_create(c, &sink);
    if (s == NULL) {
      glue_free(g);
      goto fail;
    }
    pthread_mutex_lock(&sources_lock);
    sources[sources_num++] = s;
    pthread_mutex_unlock(&sources_lock);
    int err =
        plugin_thread_create(&g->thread, scrape_thread, s, "usage scrape");
    g->started = err == 0;
    if (err != 0) {
      ERROR("usage plugin: %s \"%s\": cannot start its scrape thread: %s",
            usage_kind_block(c->kind), c->name, strerror(err));
      source_free(s);
      goto fail;
    }
    if (plugin_register_complex_read(
            "usage", name, usage_read, interval,
            &(user_data_t){.data = s, .free_func = source_free}) != 0) {
      ERROR("usage plugin: cannot register the read callback \"%s\"", name);
      source_free(s); /* not taken by collectd */
      goto fail;
    }
  }
  conf.sources_num = 0;
  if (conf.shards > 1)
    INFO("usage plugin: shard %u of %u: scraping %zu block(s), %zu left to "
         "the other shards",
         conf.shard, conf.shards, sources_num, skipped);
  if (sources_num == 0 && skipped == 0)
    WARNING("usage plugin: no <CCC>, <Billing> or <Jasper> block: nothing "
            "to scrape");

  return 0;

fail:
  ERROR("usage plugin: start-up failed; nothing is scraped");
  unregister_reads();
  usage_exporter_stop(exporter);
  exporter = NULL;
  return -1;
}

static int usage_shutdown(void) {
  usage_exporter_stop(exporter);
  exporter = NULL;
  /* collectd has freed the read callbacks' user data before the shutdown
   * callbacks (source_free: every scrape thread stopped and joined), so
   * nothing commits any more and the store can go. */
  pthread_mutex_lock(&sources_lock);
  free(sources);
  sources = NULL;
  sources_num = 0;
  pthread_mutex_unlock(&sources_lock);
  usage_store_destroy(store);
  store = NULL;
  usage_conf_clear(&conf);
  return 0;
}

__attribute__((visibility("default"))) void module_register(void) {
  plugin_register_complex_config("usage", usage_config);
  plugin_register_init("usage", usage_init);
  plugin_register_shutdown("usage", usage_shutdown);
}
