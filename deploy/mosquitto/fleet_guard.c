/*
 * fleet_guard: a Mosquitto 2.0 plugin that keeps terminals out of the ingest's way.
 *
 * Why a plugin: Mosquitto 2.0's acl_file grants every SUBSCRIBE (its default check answers
 * "allowed" to subscribe requests and only filters deliveries). A terminal could therefore
 * join the ingest's shared subscription ($share/ingest/...): the broker dealt it every other
 * ping, its read ACL refused the delivery and the ping was gone although its publisher had
 * the PUBACK. Likewise a terminal logging in with the ingest's client id took over the
 * ingest's persistent session, its shared subscription and its queued pings.
 *
 * Rules (every client whose username is not one of the service users is a terminal):
 *  - a terminal may subscribe to nothing: every SUBSCRIBE is refused in the SUBACK
 *    (0x80 in MQTT 3.1.1, 0x87 Not authorized in MQTT 5);
 *  - a terminal's client id must be its username (its terminal id), so it can take over no
 *    session but its own.
 * Everything else (passwords, publish and read rights) is left to password_file and
 * acl_file: this plugin's checks run first and defer to them.
 *
 * Options: plugin_opt_service_users <name>[,<name>...]   (required)
 * Built by telematics/broker.py (`fleet broker sync|start`) with the headers of Debian's
 * mosquitto-dev and libmosquitto-dev; loaded only at broker start (not on SIGHUP).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#define MAX_SERVICE_USERS 16

static mosquitto_plugin_id_t *plugin_id = NULL;
static char *service_users[MAX_SERVICE_USERS];
static int service_user_count = 0;

static bool is_service(const char *username)
{
	int i;

	if(username == NULL) return false;
	for(i = 0; i < service_user_count; i++){
		if(strcmp(username, service_users[i]) == 0) return true;
	}
	return false;
}

static int on_basic_auth(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_basic_auth *ed = event_data;
	const char *client_id;

	(void)event;
	(void)userdata;
	if(ed->username == NULL || is_service(ed->username)){
		return MOSQ_ERR_PLUGIN_DEFER; /* anonymous is refused by allow_anonymous false */
	}
	client_id = mosquitto_client_id(ed->client);
	if(client_id == NULL || strcmp(client_id, ed->username) != 0){
		mosquitto_log_printf(MOSQ_LOG_NOTICE,
				"fleet_guard: refused terminal %s: client id \"%s\" is not its terminal id",
				ed->username, client_id ? client_id : "");
		return MOSQ_ERR_AUTH;
	}
	return MOSQ_ERR_PLUGIN_DEFER; /* the password file decides */
}

static int on_acl_check(int event, void *event_data, void *userdata)
{
	struct mosquitto_evt_acl_check *ed = event_data;
	const char *username;

	(void)event;
	(void)userdata;
	if(ed->access != MOSQ_ACL_SUBSCRIBE) return MOSQ_ERR_PLUGIN_DEFER;
	username = mosquitto_client_username(ed->client);
	if(is_service(username)) return MOSQ_ERR_PLUGIN_DEFER;
	mosquitto_log_printf(MOSQ_LOG_NOTICE, "fleet_guard: refused subscription of %s to %s",
			username ? username : "(anonymous)", ed->topic);
	return MOSQ_ERR_ACL_DENIED;
}

static void free_service_users(void)
{
	int i;

	for(i = 0; i < service_user_count; i++){
		free(service_users[i]);
		service_users[i] = NULL;
	}
	service_user_count = 0;
}

static int parse_service_users(const char *value)
{
	const char *start = value;
	const char *end;
	size_t len;

	while(*start){
		end = strchr(start, ',');
		len = end ? (size_t)(end - start) : strlen(start);
		if(len > 0){
			if(service_user_count == MAX_SERVICE_USERS) return MOSQ_ERR_INVAL;
			service_users[service_user_count] = strndup(start, len);
			if(service_users[service_user_count] == NULL) return MOSQ_ERR_NOMEM;
			service_user_count++;
		}
		if(end == NULL) break;
		start = end + 1;
	}
	return MOSQ_ERR_SUCCESS;
}

int mosquitto_plugin_version(int supported_version_count, const int *supported_versions)
{
	int i;

	for(i = 0; i < supported_version_count; i++){
		if(supported_versions[i] == 5) return 5;
	}
	return -1;
}

int mosquitto_plugin_init(mosquitto_plugin_id_t *identifier, void **user_data,
		struct mosquitto_opt *opts, int opt_count)
{
	int i;
	int rc;

	(void)user_data;
	plugin_id = identifier;
	for(i = 0; i < opt_count; i++){
		if(strcmp(opts[i].key, "service_users") == 0){
			rc = parse_service_users(opts[i].value);
			if(rc != MOSQ_ERR_SUCCESS){
				free_service_users();
				return rc;
			}
		}
	}
	if(service_user_count == 0){
		mosquitto_log_printf(MOSQ_LOG_ERR, "fleet_guard: plugin_opt_service_users is required");
		return MOSQ_ERR_INVAL;
	}
	rc = mosquitto_callback_register(plugin_id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL, NULL);
	if(rc != MOSQ_ERR_SUCCESS) return rc;
	return mosquitto_callback_register(plugin_id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL, NULL);
}

int mosquitto_plugin_cleanup(void *user_data, struct mosquitto_opt *opts, int opt_count)
{
	(void)user_data;
	(void)opts;
	(void)opt_count;
	mosquitto_callback_unregister(plugin_id, MOSQ_EVT_BASIC_AUTH, on_basic_auth, NULL);
	mosquitto_callback_unregister(plugin_id, MOSQ_EVT_ACL_CHECK, on_acl_check, NULL);
	free_service_users();
	return MOSQ_ERR_SUCCESS;
}
