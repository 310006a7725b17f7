/* backend.c - backend-independent helpers of backend.h. */
#include "backend.h"

#include <string.h>

static const struct {
    const char *name;
    prism_act act;
} act_table[] = {
    {"gelu_pytorch_tanh", PRISM_ACT_GELU_TANH},
    {"gelu_new", PRISM_ACT_GELU_TANH},
    {"gelu_fast", PRISM_ACT_GELU_TANH},
    {"gelu", PRISM_ACT_GELU_ERF},
    {"relu", PRISM_ACT_RELU},
    {"silu", PRISM_ACT_SILU},
    {"swish", PRISM_ACT_SILU},
};

int prism_act_parse(const char *s, prism_act *act)
{
    for (size_t i = 0; i < sizeof act_table / sizeof act_table[0]; i++)
        if (strcmp(act_table[i].name, s) == 0) {
            *act = act_table[i].act;
            return 0;
        }
    return -1;
}

const char *prism_act_name(prism_act act)
{
    if (act == PRISM_ACT_NONE)
        return "none";
    for (size_t i = 0; i < sizeof act_table / sizeof act_table[0]; i++)
        if (act_table[i].act == act)
            return act_table[i].name;
    return "?";
}

void prism_backend_destroy(prism_backend *be)
{
    if (be)
        be->ops->destroy(be);
}

int prism_backend_failed(prism_backend *be, prism_error *err, const char *what)
{
    if (!err)
        return -1;
    prism_error why = {.msg = "", .code = PRISM_ERR_FAILED};
    if (be->ops->describe_error)
        be->ops->describe_error(be, &why);
    if (!why.msg[0])
        return prism_errorf(err, "%s backend failed in %s", be->ops->name, what);
    *err = why;
    return prism_error_prefix(err, "%s backend failed in %s", be->ops->name, what);
}
