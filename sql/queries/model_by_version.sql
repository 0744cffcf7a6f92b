SELECT * FROM ssl_models WHERE model_version = $model_version;
