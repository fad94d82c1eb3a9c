// Model routing for the nginx gateway (deploy/nginx/nginx.conf, `js_content` in `location /`).
//
// OpenAI clients name the model in the JSON body ("model"), not in the path or a header, so
// plain nginx cannot route on it: this handler reads the (already buffered) body, puts the
// model's name in $corvid_model, and hands the request to the proxying location
// `@corvid`, where the `map $corvid_model $corvid_pool` of nginx.conf picks the upstream.
// A model that no map line names and no `default` catches gets the OpenAI-style 404 that a
// corvid replica would give, from the gateway itself, without bothering any replica.
// Requests without a model (GET /health, GET /v1/models, a body that is not JSON) keep
// $corvid_model empty; the map sends them to the upstream of every replica.

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
        r.headersOut['Content-Type'] = 'application/json';
        r.return(404, JSON.stringify({
            error: {
                message: 'The model `' + model + '` does not exist.',
                type: 'invalid_request_error',
                param: 'model',
                code: 'model_not_found',
            },
        }) + '\n');
        return;
    }
    r.internalRedirect('@corvid');
}

export default { route };
