package com.recipeml.client;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
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
    private static final ObjectMapper JSON = new ObjectMapper();
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

    /** The same JSON, whatever the order of the members (the one Jackson writes differs between versions). */
    private static void assertSameJson(String expected, String actual) {
        try {
            assertEquals(JSON.readTree(expected), JSON.readTree(actual), actual);
        } catch (JsonProcessingException e) {
            throw new AssertionError("not JSON: " + actual, e);
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

    @Test
    void theTagFiltersAreSentOnEveryRecommendationRequestAndExhaustedIsRead() {
        status = 200;
        RecipeMlClient client = client(null);
        List<String> vegan = List.of("vegan");
        List<String> peanut = List.of("contains:peanut");
        String listed = "\"model_used\":\"two_tower\",\"latency_ms\":1.0,\"cached\":false,\"exhausted\":true,";

        answer = "{" + listed + "\"user_id\":7,\"recommendations\":[]}";
        Models.RecipeRecommendations recipes = client.recommendRecipes(
                Models.RecipeRequest.of(7, 3).withRequireTags(vegan).withExcludeTags(peanut));
        assertSameJson("{\"user_id\":7,\"top_k\":3,\"require_tags\":[\"vegan\"],\"exclude_tags\":[\"contains:peanut\"]}",
                seenBody.get());
        assertTrue(recipes.exhausted());

        answer = "{" + listed + "\"recommendations\":[]}";
        assertTrue(client.coldStart(Models.ColdStartRequest.of(3, List.of()).withRequireTags(vegan)).exhausted());
        assertSameJson("{\"top_k\":3,\"recent_recipe_ids\":[],\"require_tags\":[\"vegan\"]}", seenBody.get());

        answer = "{" + listed + "\"recipe_id\":11,\"similar_recipes\":[]}";
        assertTrue(client.similarRecipes(Models.SimilarRecipesRequest.of(11, 3).withExcludeTags(peanut)).exhausted());
        assertSameJson("{\"recipe_id\":11,\"top_k\":3,\"exclude_tags\":[\"contains:peanut\"]}", seenBody.get());

        answer = "{\"latency_ms\":1.0,\"results\":[{\"status\":\"ok\"," + listed + "\"user_id\":7,\"recommendations\":[]}]}";
        Models.BatchResponse batch = client.recommendBatch(
                Models.BatchRequest.of(List.of(7L), 3).withRequireTags(vegan).withExcludeTags(peanut));
        assertSameJson("{\"user_ids\":[7],\"top_k\":3,\"require_tags\":[\"vegan\"],\"exclude_tags\":[\"contains:peanut\"]}",
                seenBody.get());
        assertTrue(assertInstanceOf(Models.BatchRecipes.class, batch.results().get(0)).exhausted());
    }

    @Test
    void putRecipeSendsTheSetFieldsAndReadsTheRecordThatStands() {
        status = 200;
        answer = "{\"recipe_id\":10813,\"in_catalogue\":true,\"tags\":[\"contains:peanut\",\"vegetarian\"],"
                + "\"available\":true,\"published_at\":null,\"title\":\"Brownies\","
                + "\"updated_at\":\"2026-12-01T09:30:00Z\",\"known_to_models\":true,\"live_interactions\":2,"
                + "\"applied\":false,\"a_field_added_later\":{}}";

        Models.RecipeWritten written = client(null).putRecipe(10813, new Models.RecipeFields(
                List.of("vegetarian", "contains:peanut"), null, null, "Brownies", "2026-12-01T09:30:00Z"));

        assertEquals("PUT", seen.get().getRequestMethod());
        assertEquals("/api/recipes/10813", seen.get().getRequestURI().getPath());
        assertSameJson("{\"tags\":[\"vegetarian\",\"contains:peanut\"],\"title\":\"Brownies\","
                + "\"updated_at\":\"2026-12-01T09:30:00Z\"}", seenBody.get());
        assertFalse(written.applied());
        assertNull(written.publishedAt());
        assertEquals(new Models.RecipeDetails(10813, true, List.of("contains:peanut", "vegetarian"), true, null,
                "Brownies", "2026-12-01T09:30:00Z", true, 2), written.details());
    }

    @Test
    void getRecipeIsAGetAndAnUnknownRecipeIsATypedProblem() {
        status = 404;
        answer = "{\"type\":\"urn:recipe-ml:problem:unknown-recipe\",\"title\":\"Unknown recipe\",\"status\":404,"
                + "\"detail\":\"recipe 5 is unknown to the models\",\"errors\":[],\"recipe_id\":5}";

        RecipeMlException error = assertThrows(RecipeMlException.class, () -> client(null).getRecipe(5));

        assertEquals("GET", seen.get().getRequestMethod());
        assertEquals("/api/recipes/5", seen.get().getRequestURI().getPath());
        assertTrue(error.isUnknownRecipe());
        assertFalse(error.isUnknownUser());
        assertEquals(5L, error.problem().recipeId());
    }

    @Test
    void aBulkSendsItsRecordsUnderRecipesAndItsProblemsAreTyped() {
        status = 200;
        answer = "{\"applied\":1,\"stale\":1,\"results\":[{\"recipe_id\":1,\"applied\":true},"
                + "{\"recipe_id\":2,\"applied\":false}]}";
        List<Models.RecipeUpsert> records = List.of(
                Models.RecipeUpsert.of(1, Models.RecipeFields.of(List.of("a"))),
                new Models.RecipeUpsert(2, List.of(), false, "2026-11-30T08:00:00Z", null, null));

        Models.BulkRecipesWritten written = client(null).putRecipes(records);

        assertEquals("POST", seen.get().getRequestMethod());
        assertEquals("/api/recipes/bulk", seen.get().getRequestURI().getPath());
        assertSameJson("{\"recipes\":[{\"recipe_id\":1,\"tags\":[\"a\"]},"
                + "{\"recipe_id\":2,\"tags\":[],\"available\":false,\"published_at\":\"2026-11-30T08:00:00Z\"}]}",
                seenBody.get());
        assertEquals(new Models.BulkRecipesWritten(1, 1, List.of(
                new Models.BulkResult(1, true), new Models.BulkResult(2, false))), written);

        status = 422;
        answer = "{\"type\":\"urn:recipe-ml:problem:invalid-request\",\"title\":\"Invalid request\",\"status\":422,"
                + "\"detail\":\"invalid request: recipes.1.tags.0\",\"errors\":[{\"field\":\"recipes.1.tags.0\","
                + "\"message\":\"String should match pattern\",\"type\":\"string_pattern_mismatch\"}]}";
        RecipeMlException invalid = assertThrows(RecipeMlException.class, () -> client(null).putRecipes(records));
        assertEquals("recipes.1.tags.0", invalid.problem().errors().get(0).field());

        status = 409;
        answer = "{\"type\":\"urn:recipe-ml:problem:catalogue-full\",\"title\":\"Catalogue full\",\"status\":409,"
                + "\"detail\":\"the catalogue holds 100000 recipes\",\"errors\":[]}";
        RecipeMlException full = assertThrows(RecipeMlException.class, () -> client(null).putRecipes(records));
        assertTrue(full.isCatalogueFull());
        assertEquals(409, full.status());
    }

    @Test
    void healthCarriesTheCatalogue() {
        status = 200;
        answer = "{\"status\":\"ok\",\"models\":{\"popularity\":\"recipe_popularity:x\"},\"refused\":{},"
                + "\"personalization\":{},\"redis\":\"ok\",\"kafka\":\"not configured\",\"experiment\":null,"
                + "\"catalogue\":{\"recipes\":3,\"hidden\":1,\"version\":7}}";

        Models.Health health = client(null).health();

        assertEquals(new Models.CatalogueHealth(3, 1, 7), health.catalogue());
    }
}
