// Model routing for the nginx gateway (deploy/nginx/nginx.conf, `js_content` in `location /`).
//
// OpenAI clients name the model in the JSON body ("model"), not in the path or a header, so
// plain nginx cannot route on it: this handler reads the (already buffered) body, puts the
// model's name in $corvid_model, and hands the request to the proxying location
// `@corvid`, where the `map $corvid_model $corvid_pool` of nginx.conf picks the upstream.
// A model that no map line names and no `default` catches gets the OpenAI-style 404 that a
// corvid replica would give, from the gateway itself, without bothering any replica.
// Requests without a model (GET /health, a body that is not JSON) keep $corvid_model
// empty; the map sends them to the upstream of every replica. GET /v1/models is answered
// by `models`: one list of the models of every upstream named in $corvid_pools.

function modelOf(r) {
    var text = r.requestText;
    if (!text) {
        return '';
    }
    try {
        var body = JSON.parse(text);
        return body !== null && typeof body.model === 'string' ? body.model : '';
    } catch (e) {
        return ''; // not JSON: the replica answers 400 with the details
    }
}

function route(r) {
    var model = modelOf(r);
    r.variables.corvid_model = model;
    if (!r.variables.corvid_pool) {
        openaiError(r, 404, 'model_not_found', 'The model `' + model + '` does not exist.', 'model');
        return;
    }
    r.internalRedirect('@corvid');
}

function openaiError(r, status, code, message, param) {
    r.headersOut['Content-Type'] = 'application/json';
    r.return(status, JSON.stringify({
        error: { message: message, type: status < 500 ? 'invalid_request_error' : 'server_error',
                 param: param, code: code },
    }) + '\n');
}

// GET /v1/models: a replica lists only its own model, so behind a gateway of several
// models the client would see whichever replica answered. Ask one replica of each upstream
// in $corvid_pools (location /_corvid_models/<upstream>) and list every model once.
async function models(r) {
    var pools = r.variables.corvid_pools.split(/\s+/).filter(function (p) { return p; });
    var replies = await Promise.all(pools.map(function (pool) {
        return r.subrequest('/_corvid_models/' + pool).catch(function () { return null; });
    }));
    var seen = {};
    var data = [];
    replies.forEach(function (reply) {
        if (!reply || reply.status !== 200) {
            return; // that model's replicas are down: list the others
        }
        try {
            JSON.parse(reply.responseText).data.forEach(function (m) {
                if (!seen[m.id]) {
                    seen[m.id] = true;
                    data.push(m);
                }
            });
        } catch (e) {
            r.error('corvid_route: unreadable model list from a replica: ' + e);
        }
    });
    if (!data.length) {
        openaiError(r, 503, 'service_unavailable', 'No replica answered the model list.', null);
        return;
    }
    r.headersOut['Content-Type'] = 'application/json';
    r.return(200, JSON.stringify({ object: 'list', data: data }));
}

export default { route, models };
