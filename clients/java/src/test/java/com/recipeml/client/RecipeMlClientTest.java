package com.recipeml.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The client's own behaviour over real HTTP, against a JDK {@link HttpServer} on the loopback that
 * answers what the service answers: what it sends (the key, no null fields) and how it reads each
 * kind of answer. The whole API is checked against a live service by {@link ClientCheck}.
 */
class RecipeMlClientTest {
    private HttpServer server;
    private final AtomicReference<HttpExchange> seen = new AtomicReference<>();
    private final AtomicReference<String> seenBody = new AtomicReference<>();
    private volatile int status;
    private volatile String answer;

    @BeforeEach
    void start() throws IOException {
        server = HttpServer.create(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0);
        server.createContext("/", this::answer);
        server.start();
    }

    @AfterEach
    void stop() {
        server.stop(0);
    }

    private void answer(HttpExchange exchange) throws IOException {
        seen.set(exchange);
        seenBody.set(new String(exchange.getRequestBody().readAllBytes(), StandardCharsets.UTF_8));
        byte[] body = answer.getBytes(StandardCharsets.UTF_8);
        String type = status >= 400 ? "application/problem+json" : "application/json";
        exchange.getResponseHeaders().set("Content-Type", type);
        exchange.sendResponseHeaders(status, body.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(body);
        }
    }

    private RecipeMlClient client(String apiKey) {
        URI base = URI.create("http://127.0.0.1:" + server.getAddress().getPort());
        return new RecipeMlClient(base, apiKey);
    }

    @Test
    void sendsTheKeyAsBearerAndLeavesUnsetFieldsOut() {
        status = 200;
        answer = "{\"model_used\":\"two_tower\",\"latency_ms\":1.5,\"cached\":false,\"user_id\":7,"
                + "\"recommendations\":[{\"recipe_id\":11,\"score\":0.5,\"rank\":1}],\"a_field_added_later\":1}";

        Models.RecipeRecommendations got = client("key-0123456789abcdef").recommendRecipes(Models.RecipeRequest.of(7, 1));

        assertEquals("Bearer key-0123456789abcdef", seen.get().getRequestHeaders().getFirst("Authorization"));
        assertEquals("/api/recommendations/recipes", seen.get().getRequestURI().getPath());
        assertEquals("{\"user_id\":7,\"top_k\":1}", seenBody.get());
        assertEquals(List.of(new Models.Recommendation(11, 0.5, 1)), got.recommendations());
    }

    @Test
    void anUnknownUserIsATypedProblemPointingAtColdStart() {
        status = 404;
        answer = "{\"type\":\"urn:recipe-ml:problem:unknown-user\",\"title\":\"Unknown user\",\"status\":404,"
                + "\"detail\":\"user 9 is unknown\",\"user_id\":9,\"cold_start\":\"/api/recommendations/cold-start\"}";

        RecipeMlException error = assertThrows(
                RecipeMlException.class, () -> client(null).recommendRecipes(Models.RecipeRequest.of(9, 3)));

        assertFalse(seen.get().getRequestHeaders().containsKey("Authorization"));
        assertTrue(error.isUnknownUser());
        assertEquals(404, error.status());
        assertEquals(9L, error.problem().userId());
        assertEquals("/api/recommendations/cold-start", error.problem().coldStart());
    }

    @Test
    void anInvalidRequestNamesItsField() {
        status = 422;
        answer = "{\"type\":\"urn:recipe-ml:problem:invalid-request\",\"title\":\"Invalid request\",\"status\":422,"
                + "\"detail\":\"1 invalid field\",\"errors\":[{\"field\":\"top_k\",\"message\":\"too small\","
                + "\"type\":\"greater_than_equal\"}]}";

        RecipeMlException error = assertThrows(
                RecipeMlException.class, () -> client(null).recommendRecipes(Models.RecipeRequest.of(9, 0)));

        assertFalse(error.isUnknownUser());
        assertEquals("top_k", error.problem().errors().get(0).field());
    }

    @Test
    void batchEntriesAreToldApartByTheirStatus() {
        status = 200;
        answer = "{\"latency_ms\":3.0,\"results\":["
                + "{\"status\":\"ok\",\"model_used\":\"als\",\"latency_ms\":1.0,\"cached\":true,\"user_id\":1,"
                + "\"recommendations\":[]},"
                + "{\"status\":\"error\",\"user_id\":2,\"problem\":{\"type\":\"urn:recipe-ml:problem:unknown-user\","
                + "\"title\":\"Unknown user\",\"status\":404,\"detail\":\"user 2 is unknown\"}}]}";

        Models.BatchResponse batch = client(null).recommendBatch(Models.BatchRequest.of(List.of(1L, 2L), 3));

        Models.BatchRecipes ok = assertInstanceOf(Models.BatchRecipes.class, batch.results().get(0));
        Models.BatchFailure failure = assertInstanceOf(Models.BatchFailure.class, batch.results().get(1));
        assertTrue(ok.cached());
        assertEquals(404, failure.problem().status());
        assertEquals(2L, failure.userId());
    }
}
